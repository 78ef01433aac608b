package users_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wikigraph/wikigraph/internal/coalesce"
	"github.com/wikigraph/wikigraph/internal/database"
	"github.com/wikigraph/wikigraph/internal/dbtest"
	"github.com/wikigraph/wikigraph/internal/users"
)

// A coalesced batch started by a request carrying a stopper (a deferred part, a subscription
// event) runs for every request that joined it; the starter's stopper must not kill it.
func TestAStartersStopperSparesTheSharedBatch(t *testing.T) {
	db, err := database.Open(database.Options{URL: dbtest.URL(t), AppName: "stopper", MaxConns: 4})
	require.NoError(t, err)
	defer db.Close()
	created := createUsers(t, db, 3)
	l := users.NewLookups(db, coalesce.Options{Slots: 1})
	bg := context.Background()

	// Hold the one slot: a lookup blocked behind a table lock.
	tx, err := db.BeginTx(bg, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(bg, "LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)
	cDone := make(chan error, 1)
	go func() { _, err := l.Find(bg, created[0].ID); cDone <- err }()
	time.Sleep(100 * time.Millisecond)

	// A: a deferred part / subscription event; its batch waits for the slot.
	stopA, endA := context.WithCancel(bg)
	ctxA := database.WithStopper(bg, stopA)
	aDone := make(chan error, 1)
	go func() { _, err := l.Find(ctxA, created[1].ID); aDone <- err }()
	time.Sleep(100 * time.Millisecond)

	// B: an ordinary request with plenty of time joins A's pending batch.
	ctxB, cancelB := context.WithTimeout(bg, 5*time.Second)
	defer cancelB()
	bDone := make(chan error, 1)
	go func() { _, err := l.Find(ctxB, created[2].ID); bDone <- err }()
	time.Sleep(100 * time.Millisecond)

	endA() // A's deadline passes or its client leaves
	require.NoError(t, tx.Commit())
	require.NoError(t, <-cDone)
	t.Logf("A: %v", <-aDone)
	require.NoError(t, <-bDone, "B's lookup failed because of A's stopper")
}
