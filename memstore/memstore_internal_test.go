package memstore

import (
	"slices"
	"testing"
)

// finishedList keeps finishing order through removals from any place and re-pushes.
func TestFinishedList(t *testing.T) {
	t.Parallel()
	var l finishedList
	ms := make([]*message, 5)
	for i := range ms {
		ms[i] = &message{seq: int64(i)}
		l.pushBack(ms[i])
	}
	order := func() []int64 {
		var out []int64
		for m := l.head; m != nil; m = m.finNext {
			out = append(out, m.seq)
		}
		var back []int64
		for m := l.tail; m != nil; m = m.finPrev {
			back = append(back, m.seq)
		}
		slices.Reverse(back)
		if !slices.Equal(out, back) {
			t.Fatalf("forward %v, backward %v", out, back)
		}
		return out
	}
	l.remove(ms[2])
	l.remove(ms[2]) // not in the list: no change
	l.remove(ms[0])
	l.remove(ms[4])
	if got := order(); !slices.Equal(got, []int64{1, 3}) {
		t.Fatalf("after removals: %v", got)
	}
	l.pushBack(ms[1]) // already in: moves to the end
	l.pushBack(ms[0])
	if got := order(); !slices.Equal(got, []int64{3, 1, 0}) {
		t.Fatalf("after pushes: %v", got)
	}
	for _, m := range []*message{ms[3], ms[1], ms[0]} {
		l.remove(m)
	}
	if l.head != nil || l.tail != nil || len(order()) != 0 {
		t.Fatal("list not empty")
	}
}
