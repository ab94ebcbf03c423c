package pgstore_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifykit/notifications"
	"github.com/notifykit/notifications/internal/benchkit"
	"github.com/notifykit/notifications/internal/pgtest"
	"github.com/notifykit/notifications/notificationstest"
	"github.com/notifykit/notifications/pgstore"
)

// crashConfig is the Manager configuration of the crash test's child processes.
func crashConfig() notifications.Config {
	cfg := benchkit.BenchConfig()
	cfg.LeaseCount = 100
	cfg.StoreSyncBufferSize = 100
	cfg.StoreSyncInterval = 50 * time.Millisecond
	cfg.FetchInterval = 50 * time.Millisecond
	cfg.LeasePeriod = 2 * time.Second
	cfg.DispatchTimeout = time.Second
	return cfg
}

const crashMessages = 20000

// TestCrashSIGKILL runs a Manager in a child process that appends every delivered message
// ID to a log file, kills it with SIGKILL mid-drain, and runs a fresh child to finish.
// Every message must end sent and appear in the log; a message may appear twice only if it
// was leased (in flight or its result buffered) at the moment of the kill.
func TestCrashSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	if !pgtest.Long() {
		t.Skipf("long test: runs in the default exec mode only (this run: %s)", os.Getenv(pgtest.EnvExecMode))
	}
	store, pool, schema := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	benchkit.EnqueueN(t, store, crashMessages)
	logPath := t.TempDir() + "/deliveries.log"

	// First child: killed once it has delivered a quarter of the messages.
	child := crashChild(ctx, t, schema, logPath, crashMessages/4)
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && lines.Text() != "KILL-ME" {
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	// What the database says at the kill: sent messages must never be delivered again.
	statusAtKill := map[uuid.UUID]notifications.Status{}
	rows, err := pool.Query(ctx, fmt.Sprintf(`SELECT m.id, %s FROM %q.messages m`, pgstore.StatusExpr, schema))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		var st string
		if err := rows.Scan(&id, &st); err != nil {
			t.Fatal(err)
		}
		statusAtKill[id] = notifications.Status(st)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	deliveredAtKill := len(readLog(t, logPath))

	// Second child: runs until every unfinished message has a written result.
	finisher := crashChild(ctx, t, schema, logPath, 0)
	if out, err := finisher.CombinedOutput(); err != nil {
		t.Fatalf("second child: %v\n%s", err, out)
	}

	counts, err := store.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[notifications.StatusSent] != crashMessages {
		t.Fatalf("after the restart: %v, want all %d sent", counts, crashMessages)
	}
	delivered := readLog(t, logPath)
	seen := map[uuid.UUID]int{}
	for _, id := range delivered {
		seen[id]++
	}
	if len(seen) != crashMessages {
		t.Fatalf("%d distinct messages in the delivery log, want %d", len(seen), crashMessages)
	}
	leasedAtKill, duplicates := 0, 0
	for id, st := range statusAtKill {
		if st == notifications.StatusLeased {
			leasedAtKill++
		}
		if seen[id] > 1 {
			duplicates++
			if st != notifications.StatusLeased {
				t.Errorf("message %s was %s at the kill but delivered %d times", id, st, seen[id])
			}
		}
		if seen[id] > 2 {
			t.Errorf("message %s delivered %d times", id, seen[id])
		}
	}
	cfg := crashConfig()
	if limit := cfg.LeaseCount + 2*cfg.StoreSyncBufferSize; duplicates > limit {
		t.Errorf("%d duplicates, more than LeaseCount + 2×StoreSyncBufferSize = %d", duplicates, limit)
	}
	t.Logf("SIGKILL after %d deliveries: %d messages were leased at the kill; %d of them were delivered twice, every other message once; all %d sent",
		deliveredAtKill, leasedAtKill, duplicates, crashMessages)
}

func crashChild(ctx context.Context, t *testing.T, schema, logPath string, killAfter int) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "CRASH_CHILD=1", "CRASH_SCHEMA="+schema, "CRASH_LOG="+logPath,
		"CRASH_KILL_AFTER="+strconv.Itoa(killAfter), pgtest.EnvURL+"="+pgtest.URL(t))
	return cmd
}

func readLog(t *testing.T, path string) []uuid.UUID {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		id, err := uuid.Parse(line)
		if err != nil {
			t.Fatalf("delivery log line %q: %v", line, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// crashChildMain is the child process of TestCrashSIGKILL (TestMain runs it instead of
// the tests when CRASH_CHILD=1). With CRASH_KILL_AFTER > 0 it prints KILL-ME after that
// many deliveries and keeps going until killed; with 0 it delivers every unfinished
// message, stops gracefully and exits 0.
func crashChildMain() int {
	if err := runCrashChild(); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	return 0
}

func runCrashChild() error {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv(pgtest.EnvURL))
	if err != nil {
		return err
	}
	defer pool.Close()
	store := pgstore.New(pool, pgstore.Config{Schema: os.Getenv("CRASH_SCHEMA")})
	watched := notificationstest.WatchStore(store)
	log, err := os.OpenFile(os.Getenv("CRASH_LOG"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	killAfter, _ := strconv.Atoi(os.Getenv("CRASH_KILL_AFTER"))

	counts, err := store.CountByStatus(ctx)
	if err != nil {
		return err
	}
	unfinished := counts[notifications.StatusPending] + counts[notifications.StatusLeased] + counts[notifications.StatusTemporaryFailure]

	var delivered atomic.Int64
	h := notificationstest.NewRecordingHandler(func(_ context.Context, d notificationstest.Delivery) (bool, error) {
		// One write(2) per delivery with O_APPEND: whole lines, and in the kernel before
		// the handler returns, so SIGKILL cannot lose a logged delivery.
		if _, err := log.WriteString(d.MsgID.String() + "\n"); err != nil {
			return true, err
		}
		if n := delivered.Add(1); killAfter > 0 && n == int64(killAfter) {
			fmt.Println("KILL-ME")
		}
		return false, nil
	})
	cfg := crashConfig()
	m, err := notifications.NewManager(watched, map[notifications.Method]notifications.Handler{notifications.MethodWebhook: h}, cfg)
	if err != nil {
		return err
	}
	m.Run(ctx)
	if killAfter > 0 {
		select {} // until SIGKILL
	}
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := watched.WaitForResults(waitCtx, unfinished); err != nil {
		return err
	}
	return m.Stop(waitCtx)
}
