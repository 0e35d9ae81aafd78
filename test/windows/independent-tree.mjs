// The tree as the Wine harnesses compute it from their own listings, independently of Warden's tracker: the root,
// then every process whose creator (ppid) was already one of them, dead or alive (Windows never reparents).
// Each process is judged once, in the first listing that shows it: if its ppid then belongs to a live process
// that is not ours, the pid was reused (Wine does reuse pids: the harness's own fastlist.exe once got a dead
// root's pid, and its conhost.exe looked like the root's child), and it is never ours, whatever comes later.
export function independentTree(rootPid, rootPpid, listings) {
  const ours = new Map();
  const notOurs = new Set();
  for (const listing of listings) {
    const keyOf = (row) => `${row.pid}:${row.ppid}`;
    const listed = new Map(listing.rows.map((row) => [row.pid, row]));
    let grew = true;
    while (grew) {
      grew = false;
      for (const row of listing.rows) {
        const key = keyOf(row);
        if (ours.has(key) || notOurs.has(key)) continue;
        const isRoot = row.pid === rootPid && row.ppid === rootPpid;
        const parent = listed.get(row.ppid);
        const parentOurs = [...ours.values()].some((o) => o.pid === row.ppid) && (parent === undefined || ours.has(keyOf(parent)));
        if (isRoot || parentOurs) {
          ours.set(key, row);
          grew = true;
        }
      }
    }
    for (const row of listing.rows) if (!ours.has(keyOf(row))) notOurs.add(keyOf(row));
  }
  return [...ours.values()];
}
