// The entries the list shows, oldest first in memory (appending live entries is O(1)),
// shown newest first. Ids are the collector's increasing decimal strings. Bounded: past
// `cap` entries the oldest are dropped and counted.

export const idNum = (id) => Number(id);

export class EntryStore {
  constructor(cap = 100000) {
    this.cap = cap;
    this.clear();
  }

  clear() {
    this.items = [];
    this.byId = new Map();
    this.newerAdded = 0; // entries added at the newest end since clear (for scroll anchoring)
    this.trimmed = 0;
    this.exhausted = false; // no older entries on the collector
    this.version = (this.version || 0) + 1;
  }

  get length() {
    return this.items.length;
  }

  // Display index 0 is the newest entry.
  at(i) {
    return this.items[this.items.length - 1 - i];
  }

  indexOfId(id) {
    const e = this.byId.get(id);
    if (!e) return -1;
    // Binary search on the numeric id (items are sorted by id).
    const n = idNum(id);
    let lo = 0, hi = this.items.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = idNum(this.items[mid].id);
      if (v === n) return this.items.length - 1 - mid;
      if (v < n) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  newestId() {
    return this.items.length ? this.items[this.items.length - 1].id : null;
  }

  oldestId() {
    return this.items.length ? this.items[0].id : null;
  }

  // Adds entries newer than the newest held (any order in, duplicates ignored).
  addNewer(list) {
    if (!list.length) return 0;
    const newest = this.items.length ? idNum(this.newestId()) : -Infinity;
    const fresh = list.filter((e) => idNum(e.id) > newest && !this.byId.has(e.id));
    fresh.sort((a, b) => idNum(a.id) - idNum(b.id));
    for (const e of fresh) {
      this.items.push(e);
      this.byId.set(e.id, e);
    }
    this.newerAdded += fresh.length;
    this.trim();
    if (fresh.length) this.version++;
    return fresh.length;
  }

  // Adds entries older than the oldest held (from a `before=` page).
  addOlder(list) {
    const oldest = this.items.length ? idNum(this.oldestId()) : Infinity;
    const old = list.filter((e) => idNum(e.id) < oldest && !this.byId.has(e.id));
    old.sort((a, b) => idNum(a.id) - idNum(b.id));
    if (!old.length) return 0;
    for (const e of old) this.byId.set(e.id, e);
    this.items = old.concat(this.items);
    this.trim();
    this.version++;
    return old.length;
  }

  trim() {
    const over = this.items.length - this.cap;
    // Trim in chunks so a steady stream does not shift the array on every entry.
    if (over > 0 && (over >= 1000 || this.items.length > this.cap + 1000 || over * 20 >= this.cap)) {
      const gone = this.items.splice(0, over);
      for (const e of gone) this.byId.delete(e.id);
      this.trimmed += gone.length;
      this.exhausted = false;
    }
  }
}
