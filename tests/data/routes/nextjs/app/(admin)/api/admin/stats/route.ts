export function GET() {
  return Response.json({ users: 0 });
}
