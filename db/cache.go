package db

import (
	"container/list"
	"sync"

	"github.com/evopress/evopress/internal/kernels"
)

// cacheKey names a level.
type cacheKey struct {
	layer string
	level int
}

type cacheEntry struct {
	key  cacheKey
	w    kernels.Weights
	size int64
}

// lru is a least-recently-used cache of levels held compactly (compactLevel), bounded by a byte
// budget on their compact sizes. Entries are shared and read-only: an evicted entry is only
// dropped, never reused, so models that still point at it stay valid.
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

func (c *lru) get(k cacheKey) (kernels.Weights, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		c.hits++
		return e.Value.(*cacheEntry).w, true
	}
	c.misses++
	return kernels.Weights{}, false
}

// put inserts w, of size bytes (unless it alone exceeds the budget), and evicts the least
// recently used entries until the budget holds. It returns the level the cache now holds for k
// (an earlier insert of the same key wins, so concurrent readers agree).
func (c *lru) put(k cacheKey, w kernels.Weights, size int64) kernels.Weights {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*cacheEntry).w
	}
	if size > c.budget {
		return w
	}
	c.items[k] = c.order.PushFront(&cacheEntry{key: k, w: w, size: size})
	c.used += size
	for c.used > c.budget {
		e := c.order.Back()
		ent := e.Value.(*cacheEntry)
		c.order.Remove(e)
		delete(c.items, ent.key)
		c.used -= ent.size
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
		c.used -= ent.size
	}
}

// CacheStats reports the level cache's state.
type CacheStats struct {
	// Budget and Used are in bytes (of levels held compactly); Entries is the number of levels
	// held.
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
