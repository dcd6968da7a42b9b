// Writer class C, a Go persistor: for each event open(O_APPEND|O_CREAT),
// write(json), write("\n") as two calls, close; no lock, no fsync.
//
// usage: cwriter LOG NAME TRUTH STOP
// Owns the keys (NAME, 0..12); when STOP exists writes its truth (last value
// per key, null when deleted, lines written) to TRUTH and exits.
package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"time"
)

func main() {
	log, name, truthPath, stop := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	truth := map[string]interface{}{}
	lines, seq := 0, 0
	// WRITER_JOURNAL: after each line, "SEQ KEY OP UNIX_TIME" is appended
	// there (the visibility tests); WRITER_PAUSE_US: pause between lines.
	var journal *os.File
	if j := os.Getenv("WRITER_JOURNAL"); j != "" {
		var err error
		if journal, err = os.OpenFile(j, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
			panic(err)
		}
	}
	pause := 500 * time.Microsecond
	if p := os.Getenv("WRITER_PAUSE_US"); p != "" {
		var us int
		fmt.Sscan(p, &us)
		pause = time.Duration(us) * time.Microsecond
	}
	for {
		if _, err := os.Stat(stop); err == nil {
			break
		}
		key := rng.Intn(12)
		seq++
		op := "SET"
		if rng.Intn(4) == 0 {
			op = "DEL"
			truth[fmt.Sprint(key)] = nil
		} else {
			truth[fmt.Sprint(key)] = seq
		}
		ev := fmt.Sprintf(`{"change_type":"%s","item_type":"%s","item":{"id":%d},"seq":%d}`, op, name, key, seq)
		f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			panic(err)
		}
		if _, err := f.Write([]byte(ev)); err != nil {
			panic(err)
		}
		// The two writes are separate calls; the pause between them is what
		// a loaded machine gives a swap to fall in (it makes the race the
		// test is about likely within a few seconds, not rare).
		time.Sleep(200 * time.Microsecond)
		if _, err := f.Write([]byte("\n")); err != nil {
			panic(err)
		}
		f.Close()
		lines++
		if journal != nil {
			now := time.Now()
			fmt.Fprintf(journal, "%d %d %s %d.%06d\n", seq, key, op, now.Unix(), now.Nanosecond()/1000)
		}
		time.Sleep(pause)
	}
	out, _ := json.Marshal(map[string]interface{}{"truth": truth, "lines": lines})
	if err := os.WriteFile(truthPath+".tmp", out, 0o644); err != nil {
		panic(err)
	}
	if err := os.Rename(truthPath+".tmp", truthPath); err != nil {
		panic(err)
	}
}
