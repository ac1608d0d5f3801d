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

func TestFromKeyIsStableAndWellFormed(t *testing.T) {
	t.Parallel()
	a, b := FromKey(SystemRecord, "outbox/42"), FromKey(SystemRecord, "outbox/42")
	require.Equal(t, a, b)
	require.Regexp(t, `^sys_[0-9a-z]{26}$`, a)
	require.True(t, HasPrefix(a, SystemRecord))
	require.NotEqual(t, a, FromKey(SystemRecord, "outbox/43"))
	require.NotEqual(t, a, FromKey(LlmCall, "outbox/42"))
}
