package db

import (
	"container/list"
	"sync"
)

// cacheKey names a decoded level.
type cacheKey struct {
	layer string
	level int
}

type cacheEntry struct {
	key cacheKey
	w   []float32
}

// lru is a least-recently-used cache of decoded levels bounded by a byte budget. Entries are
// shared, read-only slices: an evicted entry is only dropped, never reused, so models that still
// point at it stay valid.
type lru struct {
	mu     sync.Mutex
	budget int64
	used   int64
	order  *list.List // front = most recently used
	items  map[cacheKey]*list.Element
	hits   int64
	misses int64
}

func newLRU(budget int64) *lru {
	return &lru{budget: budget, order: list.New(), items: map[cacheKey]*list.Element{}}
}

func (c *lru) get(k cacheKey) ([]float32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		c.hits++
		return e.Value.(*cacheEntry).w, true
	}
	c.misses++
	return nil, false
}

// put inserts w (unless it alone exceeds the budget) and evicts the least recently used entries
// until the budget holds. It returns the slice the cache now holds for k (an earlier insert of
// the same key wins, so concurrent decoders agree).
func (c *lru) put(k cacheKey, w []float32) []float32 {
	size := int64(len(w)) * 4
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*cacheEntry).w
	}
	if size > c.budget {
		return w
	}
	c.items[k] = c.order.PushFront(&cacheEntry{key: k, w: w})
	c.used += size
	for c.used > c.budget {
		e := c.order.Back()
		ent := e.Value.(*cacheEntry)
		c.order.Remove(e)
		delete(c.items, ent.key)
		c.used -= int64(len(ent.w)) * 4
	}
	return w
}

func (c *lru) setBudget(b int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.budget = b
	for c.used > c.budget {
		e := c.order.Back()
		ent := e.Value.(*cacheEntry)
		c.order.Remove(e)
		delete(c.items, ent.key)
		c.used -= int64(len(ent.w)) * 4
	}
}

// CacheStats reports the decoded-level cache's state.
type CacheStats struct {
	// Budget and Used are in bytes; Entries is the number of decoded levels held.
	Budget, Used int64
	Entries      int
	// Hits and Misses count lookups since Open.
	Hits, Misses int64
}

func (c *lru) stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Budget: c.budget, Used: c.used, Entries: len(c.items), Hits: c.hits, Misses: c.misses}
}
