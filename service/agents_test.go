package service_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/aramaki/aramaki"
	"github.com/aramaki/aramaki/service"
	"github.com/aramaki/aramaki/store"
)

func TestAnEnrollmentTokenMayNameManySystems(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var systems []aramaki.System
	var ids []string
	for i := range 200 {
		id := fmt.Sprintf("customer-project-number-%d", i)
		systems = append(systems, aramaki.System{ID: id, Title: id})
		ids = append(ids, id)
	}
	svc := service.New(st, staticConfig{systems}, log, service.Options{})
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SyncConfig(ctx, "config"); err != nil {
		t.Fatal(err)
	}
	tok, err := svc.CreateEnrollmentToken(ctx, root, ids, time.Hour)
	if err != nil {
		t.Fatalf("a token for 200 systems: %v", err)
	}
	if len(tok.Systems) != 200 {
		t.Errorf("the token names %d systems", len(tok.Systems))
	}
}
