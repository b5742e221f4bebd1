export default function Dashboard() { return <div>dashboard</div>; }
