export default function handler(req, res) {
  res.status(200).json({ path: req.query.all });
}
