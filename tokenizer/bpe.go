package tokenizer

import (
	"container/heap"
	"hash/maphash"
	"strings"
	"sync"
)

// metaspace is SentencePiece's word-boundary marker U+2581.
const metaspace = "▁"

// bpeModel is the BPE model of a tokenizer.json: vocabulary, ranked merges
// and the options Hugging Face's tokenizers BPE honours at encode time.
type bpeModel struct {
	vocab        map[string]int
	merges       map[uint64]uint64 // (left<<32 | right) -> (rank<<32 | merged id)
	mergeList    [][2]string       // in rank order, as in the file
	unk          int               // -1 when the model has no unk_token
	unkToken     string
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string   // continuing_subword_prefix
	suffix       string   // end_of_word_suffix
	byteIDs      [256]int // ids of "<0xNN>" tokens, -1 when absent
	hasAllBytes  bool     // every <0xNN> token exists

	// splitMeta: a word may be cut before every "▁" that follows a non-"▁"
	// character and the pieces encoded independently (see canSplitMeta).
	splitMeta bool
	cache     *wordCache
}

// mergeKey packs a pair of ids.
func mergeKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// canSplitMeta decides whether cutting words at "▁" boundaries provably
// gives the same ids as running BPE over the whole word, as Hugging Face
// does for SentencePiece-style files that have no pre-tokenizer.
//
// Cut only before a "▁" whose preceding character is not "▁". BPE merges
// only adjacent symbols, and the symbols on either side of such a cut are
// the left symbol A, ending with a non-"▁" character (or a byte-fallback or
// <unk> token), and the right symbol B, a token that starts with "▁" (the
// "▁" character is in the vocabulary, so it is never a byte-fallback or
// unknown symbol; symbols only grow, so B always starts with "▁"). If no
// merge (A, B) with A not ending in "▁" and B starting with "▁" exists, no
// merge ever crosses the cut, the two sides never interact (unknown
// characters cannot fuse across it either, as "▁" is known), and the
// global lowest-rank-first order restricted to each side is exactly the
// order that side would use on its own. Merges (A, B) where A ends with "▁"
// ("▁ ▁" for runs of spaces) are harmless because runs of "▁" are never cut.
// The decision also requires no continuing_subword_prefix or
// end_of_word_suffix (they depend on word boundaries) and no ignore_merges
// (it looks the whole word up in the vocabulary).
func (m *bpeModel) canSplitMeta() bool {
	if m.prefix != "" || m.suffix != "" || m.ignoreMerges {
		return false
	}
	if _, ok := m.vocab[metaspace]; !ok {
		return false
	}
	for _, mg := range m.mergeList {
		if strings.HasPrefix(mg[1], metaspace) && !strings.HasSuffix(mg[0], metaspace) {
			return false
		}
	}
	return true
}

// tokenize appends the ids of one pre-tokenized word to dst.
func (m *bpeModel) tokenize(word string, dst []int) []int {
	if word == "" {
		return dst
	}
	if !m.splitMeta {
		return m.tokenizeWord(word, dst)
	}
	start := 0
	for i := 1; i < len(word); i++ {
		// "▁" is E2 96 81; cut before it when the previous byte is not the
		// last byte of another "▁".
		if word[i] == 0xE2 && strings.HasPrefix(word[i:], metaspace) && !strings.HasSuffix(word[:i], metaspace) {
			dst = m.tokenizeWord(word[start:i], dst)
			start = i
		}
	}
	return m.tokenizeWord(word[start:], dst)
}

// maxCachedWord is the longest word (bytes) kept in the cache.
const maxCachedWord = 256

// tokenizeWord appends the ids of one BPE word, consulting the cache.
func (m *bpeModel) tokenizeWord(word string, dst []int) []int {
	if len(word) <= maxCachedWord {
		if ids, ok := m.cache.get(word); ok {
			return append(dst, ids...)
		}
	}
	n := len(dst)
	dst = m.encodeWord(word, dst)
	if len(word) <= maxCachedWord {
		m.cache.put(word, dst[n:])
	}
	return dst
}

// encodeWord runs Hugging Face's BPE.merge_word + Word.merge_all on word.
func (m *bpeModel) encodeWord(word string, dst []int) []int {
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(dst, id)
		}
	}
	syms := m.initialSymbols(word)
	if len(syms) <= smallWord {
		syms = m.mergeSmall(syms)
	} else {
		syms = m.mergeHeap(syms)
	}
	for _, s := range syms {
		dst = append(dst, int(s))
	}
	return dst
}

// initialSymbols maps each character of word to its id, with byte fallback
// and unknown-token fusion exactly as tokenizers' BPE::merge_word.
func (m *bpeModel) initialSymbols(w string) []int32 {
	syms := make([]int32, 0, len(w))
	unkLen := 0 // >0: an <unk> is pending (HF keeps it until a known symbol)
	var buf []byte
	for i := 0; i < len(w); {
		j := i + 1
		for j < len(w) && w[j]&0xC0 == 0x80 {
			j++
		}
		s := w[i:j]
		if (m.prefix != "" && i > 0) || (m.suffix != "" && j == len(w)) {
			buf = buf[:0]
			if i > 0 {
				buf = append(buf, m.prefix...)
			}
			buf = append(buf, s...)
			if j == len(w) {
				buf = append(buf, m.suffix...)
			}
			s = string(buf)
		}
		i = j
		if id, ok := m.vocab[s]; ok {
			if unkLen > 0 {
				syms = append(syms, int32(m.unk))
				unkLen = 0
			}
			syms = append(syms, int32(id))
			continue
		}
		if m.byteFallback {
			all := true
			for k := 0; k < len(s); k++ {
				if m.byteIDs[s[k]] < 0 {
					all = false
					break
				}
			}
			if all {
				// As in Hugging Face, a pending <unk> is not flushed here.
				for k := 0; k < len(s); k++ {
					syms = append(syms, int32(m.byteIDs[s[k]]))
				}
				continue
			}
		}
		if m.unk >= 0 {
			if unkLen > 0 && !m.fuseUnk {
				syms = append(syms, int32(m.unk))
			}
			unkLen += len(s)
		}
	}
	if unkLen > 0 {
		syms = append(syms, int32(m.unk))
	}
	return syms
}

// smallWord is the symbol count up to which the quadratic merge loop is
// used; longer words use the heap (both give identical results).
const smallWord = 48

// noRank marks a pair without a merge.
const noRank = ^uint32(0)

// mergeSmall applies merges lowest rank first, leftmost first on ties.
func (m *bpeModel) mergeSmall(syms []int32) []int32 {
	if len(syms) < 2 {
		return syms
	}
	var rankBuf [smallWord]uint32
	var newBuf [smallWord]int32
	ranks, news := rankBuf[:len(syms)-1], newBuf[:len(syms)-1]
	for i := range ranks {
		ranks[i], news[i] = m.pairRank(syms[i], syms[i+1])
	}
	for len(syms) > 1 {
		best := -1
		bestRank := noRank
		for i, r := range ranks {
			if r < bestRank {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			break
		}
		syms[best] = news[best]
		syms = append(syms[:best+1], syms[best+2:]...)
		ranks = append(ranks[:best], ranks[best+1:]...)
		news = append(news[:best], news[best+1:]...)
		if best > 0 {
			ranks[best-1], news[best-1] = m.pairRank(syms[best-1], syms[best])
		}
		if best < len(ranks) {
			ranks[best], news[best] = m.pairRank(syms[best], syms[best+1])
		}
	}
	return syms
}

// pairRank looks a pair up in the merges.
func (m *bpeModel) pairRank(a, b int32) (uint32, int32) {
	if v, ok := m.merges[mergeKey(a, b)]; ok {
		return uint32(v >> 32), int32(uint32(v))
	}
	return noRank, 0
}

// heapSym is a symbol of the linked list used by mergeHeap.
type heapSym struct {
	id         int32
	prev, next int32
	gone       bool
}

// mergeEntry is a candidate merge in the priority queue.
type mergeEntry struct {
	rank uint32
	pos  int32
	id   int32
}

// mergeQueue orders candidates by rank, then position (Hugging Face's Ord).
type mergeQueue []mergeEntry

func (q mergeQueue) Len() int { return len(q) }
func (q mergeQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}
func (q mergeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mergeQueue) Push(x any)   { *q = append(*q, x.(mergeEntry)) }
func (q *mergeQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// mergeHeap is tokenizers' Word::merge_all (without dropout): a priority
// queue of candidate merges over a linked list of symbols, O(n log n).
func (m *bpeModel) mergeHeap(ids []int32) []int32 {
	n := len(ids)
	syms := make([]heapSym, n)
	q := make(mergeQueue, 0, n)
	for i, id := range ids {
		syms[i] = heapSym{id: id, prev: int32(i - 1), next: int32(i + 1)}
		if i == n-1 {
			syms[i].next = -1
		}
	}
	for i := 0; i+1 < n; i++ {
		if r, nid := m.pairRank(ids[i], ids[i+1]); r != noRank {
			q = append(q, mergeEntry{rank: r, pos: int32(i), id: nid})
		}
	}
	heap.Init(&q)
	for q.Len() > 0 {
		top := heap.Pop(&q).(mergeEntry)
		cur := &syms[top.pos]
		if cur.gone || cur.next < 0 {
			continue
		}
		nextPos := cur.next
		right := syms[nextPos]
		if r, nid := m.pairRank(cur.id, right.id); r == noRank || nid != top.id {
			continue // expired entry
		}
		cur.id = top.id
		cur.next = right.next
		syms[nextPos].gone = true
		if right.next >= 0 {
			syms[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if r, nid := m.pairRank(syms[cur.prev].id, cur.id); r != noRank {
				heap.Push(&q, mergeEntry{rank: r, pos: cur.prev, id: nid})
			}
		}
		if cur.next >= 0 {
			if r, nid := m.pairRank(cur.id, syms[cur.next].id); r != noRank {
				heap.Push(&q, mergeEntry{rank: r, pos: top.pos, id: nid})
			}
		}
	}
	out := ids[:0]
	for i := range syms {
		if !syms[i].gone {
			out = append(out, syms[i].id)
		}
	}
	return out
}

// cacheShards and cacheCapacity bound the per-word cache (entries stop being
// added once a shard is full, as in Hugging Face's cache).
const (
	cacheShards   = 32
	cacheCapacity = 1 << 17
)

// wordCache is a sharded, concurrency-safe word → ids cache.
type wordCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string][]int
}

func newWordCache() *wordCache {
	c := &wordCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[string][]int)
	}
	return c
}

func (c *wordCache) shard(w string) *cacheShard {
	return &c.shards[maphash.String(c.seed, w)%cacheShards]
}

func (c *wordCache) get(w string) ([]int, bool) {
	s := c.shard(w)
	s.mu.RLock()
	ids, ok := s.m[w]
	s.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int) {
	s := c.shard(w)
	s.mu.Lock()
	if len(s.m) < cacheCapacity/cacheShards {
		s.m[strings.Clone(w)] = append([]int(nil), ids...)
	}
	s.mu.Unlock()
}
