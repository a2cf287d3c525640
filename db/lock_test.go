package db

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/evopress/evopress/hf"
	"github.com/evopress/evopress/internal/dirlock"
)

// TestConcurrentBuildsOneDirectory runs two builds into one directory, the second with Force and
// other settings, while the first is under way: the second is refused with the first's process
// id, and the first's database is complete and verifies.
func TestConcurrentBuildsOneDirectory(t *testing.T) {
	tm := newTiny(t, 11, hf.F32)
	out := filepath.Join(t.TempDir(), "db")
	a := tm.config(out, ModeSparse, MethodMagnitude)
	a.Sparse.Levels = 1
	b := a
	b.Sparse.Target, b.Force = 0.6, true

	started, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a.Progress = func(Event) {
		once.Do(func() { close(started); <-proceed })
	}
	var resA *BuildResult
	var errA error
	done := make(chan struct{})
	go func() {
		defer close(done)
		resA, errA = Build(context.Background(), a)
	}()
	<-started
	_, errB := Build(context.Background(), b)
	close(proceed)
	<-done
	var busy *BusyError
	if !errors.As(errB, &busy) || busy.PID != os.Getpid() || !strings.Contains(errB.Error(), "is being built by another process (pid ") ||
		!strings.Contains(errB.Error(), out) {
		t.Errorf("the second build: %v, want a BusyError naming %s and this process", errB, out)
	}
	if errA != nil {
		t.Fatalf("the first build: %v", errA)
	}
	d := open(t, out)
	if err := d.Verify(); err != nil {
		t.Fatal(err)
	}
	if d.Fingerprint() != resA.Fingerprint || d.Manifest().Sparse.Target != 0.5 || !d.Manifest().Complete {
		t.Errorf("the database is not the first build's: target %v", d.Manifest().Sparse.Target)
	}
	// Once the first build is over, the lock is free.
	if res := build(t, b); len(res.Computed) != 14 {
		t.Errorf("forced rebuild after the first: computed %d layers", len(res.Computed))
	}
}

// TestBuildLockedDirectory checks the refusal while another holder has the lock, with nothing
// written.
func TestBuildLockedDirectory(t *testing.T) {
	tm := newTiny(t, 12, hf.F32)
	out := filepath.Join(t.TempDir(), "db")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	lk, err := dirlock.Acquire(filepath.Join(out, LockFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := tm.config(out, ModeQuant, MethodRTN)
	cfg.Quant.Bits = []int{4}
	_, err = Build(context.Background(), cfg)
	var busy *BusyError
	if !errors.As(err, &busy) || busy.PID != os.Getpid() {
		t.Fatalf("build into a locked directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, ManifestFile)); !os.IsNotExist(err) {
		t.Errorf("a refused build wrote its manifest (%v)", err)
	}
	lk.Release()
	build(t, cfg)
}

// TestBuildRefusesForeignDirectory checks that a non-empty directory holding no database is
// refused with and without Force, untouched (not even a lock file is added).
func TestBuildRefusesForeignDirectory(t *testing.T) {
	tm := newTiny(t, 13, hf.F32)
	out := t.TempDir()
	notes := filepath.Join(out, "notes.txt")
	if err := os.WriteFile(notes, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		cfg := tm.config(out, ModeSparse, MethodMagnitude)
		cfg.Force = force
		_, err := Build(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), out) || !strings.Contains(err.Error(), "notes.txt") ||
			!strings.Contains(err.Error(), "holds no level database") {
			t.Errorf("force %v: %v, want a refusal naming %s and notes.txt", force, err, out)
		}
	}
	entries, _ := os.ReadDir(out)
	if b, _ := os.ReadFile(notes); string(b) != "mine\n" || len(entries) != 1 {
		t.Errorf("the directory changed: %v", entries)
	}
}

// TestForceReplacesOnlyLevelFiles checks that a forced rebuild with other settings removes the
// old database's level files and nothing a user put next to them.
func TestForceReplacesOnlyLevelFiles(t *testing.T) {
	tm := newTiny(t, 14, hf.F32)
	out := filepath.Join(t.TempDir(), "db")
	cfg := tm.config(out, ModeSparse, MethodMagnitude)
	cfg.Sparse.Levels = 1
	build(t, cfg)
	mine := []string{filepath.Join(out, "README.md"), filepath.Join(out, "levels", "notes.txt"),
		filepath.Join(out, "levels", "model.layers.0.mlp.up_proj", "keep.me")}
	for _, p := range mine {
		if err := os.WriteFile(p, []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	q := tm.config(out, ModeQuant, MethodRTN)
	q.Quant.Bits = []int{3}
	q.Force = true
	build(t, q)
	for _, p := range mine {
		if b, err := os.ReadFile(p); err != nil || string(b) != "mine" {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
	evl := 0
	filepath.WalkDir(filepath.Join(out, "levels"), func(p string, e os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".evl") {
			evl++
			if !strings.HasSuffix(p, "b3.evl") {
				t.Errorf("level file of the replaced database left: %s", p)
			}
		}
		return nil
	})
	if evl != 14 {
		t.Errorf("%d level files, want 14", evl)
	}
	if err := open(t, out).Verify(); err != nil {
		t.Error(err)
	}
}

// TestManifestFromTheStart checks that a build stopped before its first layer leaves a
// database directory (an incomplete manifest) that the next build resumes.
func TestManifestFromTheStart(t *testing.T) {
	tm := newTiny(t, 15, hf.F32)
	dir := t.TempDir()
	out := filepath.Join(dir, "db")
	cfg := tm.config(out, ModeQuant, MethodRTN)
	cfg.Quant.Bits = []int{2, 4}
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Progress = func(ev Event) {
		if ev.Phase == "calib" {
			cancel()
		}
	}
	if _, err := Build(ctx, cfg); err == nil {
		t.Fatal("cancelled build succeeded")
	}
	man, err := ParseManifest(snapshot(t, out)[ManifestFile], "manifest")
	if err != nil {
		t.Fatalf("no manifest after an interrupted build: %v", err)
	}
	if man.Complete || len(man.Layers) != 0 {
		t.Errorf("manifest complete %v with %d layers", man.Complete, len(man.Layers))
	}
	cfg.Progress = nil
	res := build(t, cfg)
	ref := cfg
	ref.Out = filepath.Join(dir, "ref")
	if build(t, ref).Fingerprint != res.Fingerprint {
		t.Error("the resumed build differs from an uninterrupted one")
	}
}

// TestCheckBuildDir checks the early test of a build's output directory.
func TestCheckBuildDir(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	foreign := filepath.Join(tmp, "foreign")
	locked := filepath.Join(tmp, "locked")
	for _, d := range []string{foreign, locked} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(file, nil, 0o644)
	os.WriteFile(filepath.Join(foreign, "x.txt"), nil, 0o644)
	lk, err := dirlock.Acquire(filepath.Join(locked, LockFile))
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Release()
	for _, tc := range []struct{ dir, want string }{
		{filepath.Join(tmp, "new"), ""},
		{t.TempDir(), ""},
		{file, "not a directory"},
		{foreign, "x.txt"},
		{locked, "being built by another process (pid "},
	} {
		err := CheckBuildDir(tc.dir)
		if (tc.want == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.dir))) {
			t.Errorf("CheckBuildDir(%s) = %v, want %q", tc.dir, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(foreign, LockFile)); !os.IsNotExist(err) {
		t.Error("the check left a lock file in a foreign directory")
	}
}
