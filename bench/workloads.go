package main

import (
	"context"
	"slices"
	"time"
)

// e2e alternates ours, River with its defaults, and River with its best settings.
func (b *bench) e2e(ctx context.Context) error {
	rate, cost, err := b.oursDrain(ctx, 1)
	if err != nil {
		return err
	}
	b.record("e2e ours msgs/s", rate)
	b.record("cost go cpu s/10k", cost.goPer10k)
	b.record("cost postgres cpu s/10k", cost.pgPer10k)
	for _, s := range []riverSettings{riverDefault, riverBest} {
		rate, cost, err := b.riverDrain(ctx, s)
		if err != nil {
			return err
		}
		b.record("e2e river "+s.name+" msgs/s", rate)
		if s == riverBest {
			b.record("cost river go cpu s/10k", cost.goPer10k)
			b.record("cost river postgres cpu s/10k", cost.pgPer10k)
		}
	}
	return nil
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
	ours, err := b.oursLatency(ctx)
	if err != nil {
		return err
	}
	b.recordPercentiles("latency ours", ours)
	for _, s := range []riverSettings{riverDefault, river10ms} {
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
