export default function handler(req, res) {
  res.status(200).json({ user: req.query["user-id"], orders: [] });
}
