package tabular

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var cols = []Column{{"id", String}, {"n", Int}, {"cost_usd", Dollars}, {"cost_micros", Int}, {"x", Float},
	{"ok", Bool}, {"at", Time}, {"tags", JSON}, {"maybe", Int}}

var tricky = []string{"", "plain", "comma, inside", `quote " inside`, "line\nbreak", " leading space", "tab\tinside",
	"ünïcödé — ✓ 🚀", "trailing space ", `"fully quoted"`, "=1+1", "-2", "@SUM(A1)", "+x", "\u2028sep\u2029"}

func TestCSVIsReadBackByEncodingCSV(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, CSV, cols, false)
	require.NoError(t, err)
	at := time.Date(2026, 3, 29, 1, 30, 0, 123456000, time.FixedZone("CET", 3600))
	for i, s := range tricky {
		require.NoError(t, w.Row([]Value{Str(s), Num(int64(i)), Num(12_345_678), Num(12_345_678), Flt(0.25), Bln(i%2 == 0), At(at),
			Raw([]byte(`{"team":"a,b"}`)), NumP(nil)}))
	}
	require.NoError(t, w.Flush())
	require.EqualValues(t, len(tricky), w.Rows())
	require.True(t, strings.HasPrefix(buf.String(), "id,n,cost_usd,cost_micros,x,ok,at,tags,maybe\r\n"), "a header row, CRLF")

	recs, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, len(tricky)+1)
	for i, s := range tricky {
		r := recs[i+1]
		require.Equal(t, s, r[0], "row %d", i)
		require.Equal(t, "12.345678", r[2])
		require.Equal(t, "12345678", r[3])
		require.Equal(t, "0.25", r[4])
		require.Equal(t, "2026-03-29T00:30:00.123456Z", r[6], "UTC with microseconds")
		require.Equal(t, `{"team":"a,b"}`, r[7])
		require.Equal(t, "", r[8], "null is empty")
	}
}

func TestExcelCSVHasABOMAndNoFormulas(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, CSV, []Column{{"name", String}, {"n", Int}}, true)
	require.NoError(t, err)
	for _, s := range []string{"=HYPERLINK(\"http://x\")", "+1", "-1", "@x", "\tx", "safe"} {
		require.NoError(t, w.Row([]Value{Str(s), Num(-5)}))
	}
	require.NoError(t, w.Flush())
	require.True(t, bytes.HasPrefix(buf.Bytes(), []byte{0xEF, 0xBB, 0xBF}), "UTF-8 byte-order mark")
	recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(buf.Bytes(), []byte(UTF8BOM)))).ReadAll()
	require.NoError(t, err)
	got := []string{}
	for _, r := range recs[1:] {
		got = append(got, r[0])
		require.Equal(t, "-5", r[1], "numbers are left alone")
	}
	require.Equal(t, []string{"'=HYPERLINK(\"http://x\")", "'+1", "'-1", "'@x", "'\tx", "safe"}, got)
}

func TestNDJSONIsOneObjectPerLine(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, NDJSON, cols, true) // excel does not apply to JSON
	require.NoError(t, err)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	for i, s := range tricky {
		require.NoError(t, w.Row([]Value{Str(s), Num(int64(i)), Num(-1), Num(-1), Flt(math.NaN()), Bln(true), At(at),
			Raw([]byte(`{"team":"a"}`)), NumP(nil)}))
	}
	require.NoError(t, w.Flush())
	sc := bufio.NewScanner(&buf)
	i := 0
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		require.Equal(t, tricky[i], m["id"])
		require.EqualValues(t, i, m["n"])
		require.Equal(t, "-0.000001", m["cost_usd"])
		require.EqualValues(t, -1, m["cost_micros"])
		require.Nil(t, m["x"], "NaN is null")
		require.Equal(t, true, m["ok"])
		require.Equal(t, "2026-01-02T03:04:05.000006Z", m["at"])
		require.Equal(t, map[string]any{"team": "a"}, m["tags"])
		require.Contains(t, m, "maybe")
		require.Nil(t, m["maybe"])
		i++
	}
	require.Equal(t, len(tricky), i)
}

func TestDollars(t *testing.T) {
	t.Parallel()
	for micros, want := range map[int64]string{0: "0.000000", 1: "0.000001", 999_999: "0.999999", 1_000_000: "1.000000",
		12_345_678: "12.345678", -12_345_678: "-12.345678", 1_000_000_000_000_000: "1000000000.000000",
		math.MaxInt64: "9223372036854.775807", math.MinInt64: "-9223372036854.775808"} {
		require.Equal(t, want, string(appendDollars(nil, micros)), micros)
	}
}

// Writing a row allocates nothing: memory does not grow with the rows of an export.
func TestRowDoesNotAllocate(t *testing.T) {
	for _, f := range []Format{CSV, NDJSON} {
		w, err := NewWriter(io.Discard, f, cols, false)
		require.NoError(t, err)
		row := []Value{Str(`a "quoted", value`), Num(42), Num(1_234_567), Num(1_234_567), Flt(1.5), Bln(true),
			At(time.Now()), Raw([]byte(`{"k":"v"}`)), NumP(nil)}
		require.NoError(t, w.Row(row))
		allocs := testing.AllocsPerRun(1000, func() { _ = w.Row(row) })
		require.Zero(t, allocs, "format %d", f)
	}
}

// What every byte string becomes after a JSON round trip: each invalid byte one U+FFFD.
func jsonDecoded(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range tricky {
		f.Add(s)
	}
	f.Add("\xff\xfe invalid \xc3")
	f.Add("\r\n\r")
	f.Fuzz(func(t *testing.T, s string) {
		var c bytes.Buffer
		w, err := NewWriter(&c, CSV, []Column{{"s", String}, {"n", Int}}, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Row([]Value{Str(s), Num(1)}); err != nil {
			t.Fatal(err)
		}
		_ = w.Flush()
		recs, err := csv.NewReader(&c).ReadAll()
		if err != nil {
			t.Fatalf("encoding/csv cannot read %q: %v", c.String(), err)
		}
		// encoding/csv drops a carriage return before a line feed, even inside quotes.
		want := strings.ReplaceAll(s, "\r\n", "\n")
		if len(recs) != 2 || len(recs[1]) != 2 || recs[1][0] != want || recs[1][1] != "1" {
			t.Fatalf("CSV of %q read back as %q", s, recs)
		}
		var j bytes.Buffer
		w, _ = NewWriter(&j, NDJSON, []Column{{"s", String}}, false)
		_ = w.Row([]Value{Str(s)})
		_ = w.Flush()
		var m map[string]string
		if err := json.Unmarshal(bytes.TrimSuffix(j.Bytes(), []byte("\n")), &m); err != nil {
			t.Fatalf("JSON of %q: %v (%s)", s, err, j.String())
		}
		if bytes.Count(j.Bytes(), []byte("\n")) != 1 {
			t.Fatalf("JSON of %q is not one line: %q", s, j.String())
		}
		if m["s"] != jsonDecoded(s) {
			t.Fatalf("JSON of %q read back as %q", s, m["s"])
		}
	})
}

func TestTimesAreRFC3339UTCWithMicroseconds(t *testing.T) {
	t.Parallel()
	for _, tm := range []time.Time{
		time.Date(2026, 3, 29, 1, 30, 0, 123456789, time.FixedZone("CEST", 2*3600)),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2000, 2, 29, 0, 0, 0, 1000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		require.Equal(t, tm.UTC().Format(timeLayout), string(appendTime(nil, tm)), tm.String())
	}
}
