package main

import (
	"context"
	"slices"
	"time"
)

// e2e alternates ours, River with its defaults, and River with its best settings, each
// drain after a CHECKPOINT of its own, taken before its backlog is stored.
func (b *bench) e2e(ctx context.Context) error {
	return b.drains(ctx, "", beforeBacklog, riverDefault, riverBest)
}

// aged is e2e with the CHECKPOINT between storing the backlog and draining it: ours and
// River with its best settings drain a backlog older than the last checkpoint, so the
// full-page images of every page they change are theirs to write.
func (b *bench) aged(ctx context.Context) error {
	return b.drains(ctx, "aged ", beforeDrain, riverBest)
}

// drains drains a backlog with ours and then with River under each of rivers, recording
// the rates and costs under prefix.
func (b *bench) drains(ctx context.Context, prefix string, at checkpointAt, rivers ...riverSettings) error {
	rate, cost, err := b.oursDrain(ctx, 1, at)
	if err != nil {
		return err
	}
	b.record(prefix+"e2e ours msgs/s", rate)
	b.recordCost(prefix+"cost ", cost)
	for _, s := range rivers {
		rate, cost, err := b.riverDrain(ctx, s, at)
		if err != nil {
			return err
		}
		b.record(prefix+"e2e river "+s.name+" msgs/s", rate)
		if s == riverBest {
			b.recordCost(prefix+"cost river ", cost)
		}
	}
	return nil
}

// recordCost records a drain's cost per message under prefix.
func (b *bench) recordCost(prefix string, cost cpuCost) {
	b.record(prefix+"go cpu s/10k", cost.goPer10k)
	b.record(prefix+"postgres cpu s/10k", cost.pgPer10k)
	if cost.walOK {
		b.record(prefix+"wal bytes/msg", cost.walPer)
		b.record(prefix+"full-page images/1k msgs", cost.fpiPer*1000)
	}
}

func (b *bench) raw(ctx context.Context) error {
	rate, err := b.rawDrain(ctx)
	if err != nil {
		return err
	}
	b.record("raw pgx msgs/s", rate)
	return nil
}

func (b *bench) enqueue(ctx context.Context) error {
	if err := b.oursEnqueue(ctx); err != nil {
		return err
	}
	return b.riverEnqueue(ctx)
}

func (b *bench) latency(ctx context.Context) error {
	if err := b.checkpoint(ctx); err != nil {
		return err
	}
	ours, err := b.oursLatency(ctx)
	if err != nil {
		return err
	}
	b.recordPercentiles("latency ours", ours)
	for _, s := range []riverSettings{riverDefault, river10ms} {
		if err := b.checkpoint(ctx); err != nil {
			return err
		}
		d, err := b.riverLatency(ctx, s)
		if err != nil {
			return err
		}
		b.recordPercentiles("latency river "+s.name, d)
	}
	return nil
}

func (b *bench) recordPercentiles(prefix string, d []time.Duration) {
	slices.Sort(d)
	at := func(p int) float64 {
		return float64(d[min(len(d)-1, len(d)*p/100)].Microseconds()) / 1000
	}
	b.record(prefix+" p50 ms", at(50))
	b.record(prefix+" p90 ms", at(90))
	b.record(prefix+" p99 ms", at(99))
}
