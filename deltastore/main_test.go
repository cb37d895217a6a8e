package deltastore

import (
	"testing"

	"go.uber.org/goleak"
)

// Run and Restore's wait for the directory lock must end with their context.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
