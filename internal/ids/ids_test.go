package ids

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNewIsOrderedAndWellFormed(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^prj_[0-9a-z]{26}$`)
	prev := ""
	for range 1000 {
		id := New(Project)
		require.Regexp(t, re, id)
		require.True(t, HasPrefix(id, Project))
		require.False(t, HasPrefix(id, Agent))
		require.Greater(t, id, prev, "identifiers must sort by creation")
		prev = id
	}
}
