package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/stratadb/strata/lsm"
)

// The loaded data is a function of the key index i in [0, keys): key i is
// mix(i) followed by i, both big-endian (16 bytes, in random order, never
// two alike), and its value is valueSize pseudo-random bytes seeded by i, so
// that the parent can check any key it reads without keeping a copy. Keys
// with an index past the loaded ones are the missing keys of the reads.

// scaleKeySize is the size of every loaded key.
const scaleKeySize = 16

// mix is the splitmix64 finalizer: a bijection of uint64 that scatters
// consecutive inputs.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// scaleKey writes key i into dst and returns it.
func scaleKey(dst []byte, i uint64) []byte {
	dst = binary.BigEndian.AppendUint64(dst[:0], mix(i))
	return binary.BigEndian.AppendUint64(dst, i)
}

// keyIndex returns the index of a loaded key, or false for a key no index
// makes.
func keyIndex(key []byte) (uint64, bool) {
	if len(key) != scaleKeySize {
		return 0, false
	}
	i := binary.BigEndian.Uint64(key[8:])
	return i, binary.BigEndian.Uint64(key) == mix(i)
}

// scaleValue writes the n-byte value of key i into dst and returns it.
func scaleValue(dst []byte, i uint64, n int) []byte {
	dst = dst[:0]
	s := mix(i ^ 0x5851f42d4c957f2d)
	for len(dst) < n {
		s += 0x9e3779b97f4a7c15
		dst = binary.LittleEndian.AppendUint64(dst, mix(s))
	}
	return dst[:n]
}

// loadMsg is the loader's report after each commit, one JSON line on file
// descriptor 3.
type loadMsg struct {
	Txns, Keys int
	// Elapsed is the time since the load started (after Open).
	Elapsed time.Duration
	// Done is set on the report of the last commit.
	Done    bool
	Metrics lsm.Metrics
}

// runLoader is the child process: it loads the keys, reporting each commit
// on file descriptor 3, and once done waits to be killed without closing
// the store. If its standard input ends first (the parent is gone) it
// exits, still without closing the store.
func runLoader(c scaleConfig, stdout, stderr io.Writer) error {
	logger, err := c.engineLogger(stderr)
	if err != nil {
		return err
	}
	db, err := lsm.Open(c.dir, c.options(logger))
	if err != nil {
		return err
	}
	report := json.NewEncoder(os.NewFile(3, "report"))
	if err := load(c, db, report, stdout); err != nil {
		db.Close()
		return err
	}
	io.Copy(io.Discard, os.Stdin)
	os.Exit(3) // no Close: the store stays as a crash leaves it
	return nil
}

// load commits the keys in transactions of c.batch writes, each with the
// offset of its last key.
func load(c scaleConfig, db *lsm.DB, report *json.Encoder, stdout io.Writer) error {
	key := make([]byte, 0, scaleKeySize)
	value := make([]byte, 0, c.valueSize+8)
	start := time.Now()
	p := progress{out: stdout, start: start, last: start}
	msg := loadMsg{}
	for msg.Keys < c.keys {
		t := db.Begin(nil)
		end := min(msg.Keys+c.batch, c.keys)
		for i := msg.Keys; i < end; i++ {
			if err := t.Set(scaleKey(key, uint64(i)), scaleValue(value, uint64(i), c.valueSize)); err != nil {
				t.Rollback()
				return fmt.Errorf("scale: set key %d: %w", i, err)
			}
		}
		if err := t.SetOffset(scaleStream, int64(end-1)); err != nil {
			t.Rollback()
			return fmt.Errorf("scale: set offset %d: %w", end-1, err)
		}
		if err := t.Commit(); err != nil {
			return fmt.Errorf("scale: commit of keys up to %d: %w", end-1, err)
		}
		msg = loadMsg{Txns: msg.Txns + 1, Keys: end, Elapsed: time.Since(start), Done: end == c.keys, Metrics: db.Metrics()}
		if err := report.Encode(&msg); err != nil {
			return fmt.Errorf("scale: reporting to the parent: %w", err)
		}
		p.maybePrint(c, msg)
	}
	return nil
}

// progress prints the load's progress every few seconds.
type progress struct {
	out         io.Writer
	start, last time.Time
	lastKeys    int
}

const progressInterval = 10 * time.Second

// maybePrint prints a progress line if the last one is old enough.
func (p *progress) maybePrint(c scaleConfig, msg loadMsg) {
	now := time.Now()
	if now.Sub(p.last) < progressInterval && !msg.Done {
		return
	}
	m := msg.Metrics
	fmt.Fprintf(p.out, "  load %5.1f%% %10d keys %6.0fs %8.0f keys/s now | L0 %d tables, %d memtables, %d flushes, %d compactions, %d stalls (%v), slowed %v\n",
		100*float64(msg.Keys)/float64(c.keys), msg.Keys, now.Sub(p.start).Seconds(),
		float64(msg.Keys-p.lastKeys)/now.Sub(p.last).Seconds(), m.Levels[0].Tables, m.MemTables, m.Flushes,
		m.Compactions, m.Stalls, m.StallTime.Round(time.Millisecond), m.SlowdownTime.Round(time.Millisecond))
	p.last, p.lastKeys = now, msg.Keys
}

// loadResult is what the parent saw of the load.
type loadResult struct {
	last       loadMsg // the last report before the kill
	killedWhen string
	cpu        time.Duration // the loader's user and system time
}

// runLoad runs the loader in a child process and SIGKILLs it once it
// reports the last commit, or c.killAt of the keys.
func runLoad(c scaleConfig, out io.Writer) (loadResult, error) {
	var r loadResult
	exe, err := os.Executable()
	if err != nil {
		return r, err
	}
	cmd := exec.Command(exe, c.childArgs()...)
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return r, err
	}
	defer stdin.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return r, err
	}
	defer pr.Close()
	cmd.ExtraFiles = []*os.File{pw} // fd 3: the reports
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return r, err
	}
	r, err = watchLoad(c, cmd, pr)
	cmd.Process.Kill()
	werr := cmd.Wait()
	if ps := cmd.ProcessState; ps != nil {
		r.cpu = ps.UserTime() + ps.SystemTime()
	}
	if err == nil && r.killedWhen == "" {
		err = fmt.Errorf("scale: the loader exited before it was killed (%v)", werr)
	}
	return r, err
}

// watchLoad reads the loader's reports until it is time to kill it, and
// kills it. It fails if the loader commits nothing for c.stallTimeout.
func watchLoad(c scaleConfig, cmd *exec.Cmd, reports io.Reader) (loadResult, error) {
	var r loadResult
	msgs := make(chan loadMsg, 64)
	errc := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(msgs)
		dec := json.NewDecoder(reports)
		for {
			var m loadMsg
			if err := dec.Decode(&m); err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-stop:
				return
			}
		}
	}()
	killKeys := int(c.killAt * float64(c.keys))
	timer := time.NewTimer(c.stallTimeout)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				if err := <-errc; !errors.Is(err, io.EOF) {
					return r, fmt.Errorf("scale: reading the loader's reports: %w", err)
				}
				return r, nil // the loader exited: runLoad reports it
			}
			r.last = m
			if m.Done || m.Keys >= killKeys {
				cmd.Process.Kill()
				r.killedWhen = fmt.Sprintf("after commit %d of %d keys", m.Txns, m.Keys)
				if m.Done {
					r.killedWhen = "right after the last commit"
				}
				return r, nil
			}
			timer.Reset(c.stallTimeout)
		case <-timer.C:
			cmd.Process.Kill()
			return r, fmt.Errorf("scale: the loader committed nothing for %v after %d keys; its last metrics:\n%s",
				c.stallTimeout, r.last.Keys, r.last.Metrics)
		}
	}
}
