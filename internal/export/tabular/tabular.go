// Package tabular writes rows as CSV (RFC 4180) or newline-delimited JSON, one row at a
// time into a buffered writer, with no allocation per row: exports of any size stream in
// constant memory. Columns are typed; money is written as decimal dollars beside its
// integer micro-dollar column by the caller's choice of columns. No I/O beyond the writer.
package tabular

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Format is CSV or NDJSON.
type Format int

const (
	CSV Format = iota
	NDJSON
)

// Kind is a column's type.
type Kind int

const (
	String Kind = iota
	Int
	// Dollars is an integer of micro-dollars written as decimal dollars ("12.345678"); a
	// string in JSON, so that no float rounds it.
	Dollars
	Float
	Bool
	// Time is written in RFC 3339, UTC, with microseconds.
	Time
	// JSON is a JSON value (an object of tags, an audit entry's before and after), held as
	// text: text in CSV, embedded as is in NDJSON. It must be valid JSON (the datasets read
	// it from jsonb columns).
	JSON
)

// Column is a named, typed column.
type Column struct {
	Name string
	Kind Kind
}

// Value is one cell; the field of its column's kind is used. Null cells are empty in CSV
// and null in JSON.
type Value struct {
	Null bool
	S    string
	I    int64
	F    float64
	B    bool
	T    time.Time
}

// Str, Num, … build values.
func Str(s string) Value { return Value{S: s} }

// Num is an integer (or micro-dollar) value.
func Num(i int64) Value { return Value{I: i} }

// NumP is an integer that may be absent.
func NumP(p *int64) Value {
	if p == nil {
		return Value{Null: true}
	}
	return Value{I: *p}
}

// StrP is a string that may be absent (absent: empty).
func StrP(p *string) Value {
	if p == nil {
		return Value{}
	}
	return Value{S: *p}
}

// Flt is a float value.
func Flt(f float64) Value { return Value{F: f} }

// Bln is a boolean value.
func Bln(b bool) Value { return Value{B: b} }

// At is a time value; the zero time is null.
func At(t time.Time) Value { return Value{T: t, Null: t.IsZero()} }

// AtP is a time that may be absent.
func AtP(p *time.Time) Value {
	if p == nil {
		return Value{Null: true}
	}
	return At(*p)
}

// Raw is a JSON value; empty is null.
func Raw(j []byte) Value { return Value{S: string(j), Null: len(j) == 0} }

// RawS is a JSON value held as a string; empty is null.
func RawS(j string) Value { return Value{S: j, Null: j == ""} }

// Writer writes rows of fixed columns.
type Writer struct {
	w      *bufio.Writer
	format Format
	cols   []Column
	excel  bool
	buf    []byte
	keys   [][]byte // NDJSON: `"name":` of each column, encoded once
	rows   int64
}

// UTF8BOM is what an Excel-bound CSV starts with.
const UTF8BOM = "\ufeff"

// NewWriter starts a file: for CSV the header row (after a byte-order mark for Excel).
// excel (CSV only) also prefixes text cells that Excel would run as formulas.
func NewWriter(w io.Writer, f Format, cols []Column, excel bool) (*Writer, error) {
	tw := &Writer{w: bufio.NewWriterSize(w, 64<<10), format: f, cols: cols, excel: excel && f == CSV, buf: make([]byte, 0, 4096)}
	switch f {
	case CSV:
		if tw.excel {
			tw.buf = append(tw.buf, UTF8BOM...)
		}
		for i, c := range cols {
			if i > 0 {
				tw.buf = append(tw.buf, ',')
			}
			tw.buf = appendCSV(tw.buf, c.Name)
		}
		tw.buf = append(tw.buf, '\r', '\n')
		if _, err := tw.w.Write(tw.buf); err != nil {
			return nil, err
		}
	case NDJSON:
		for i, c := range cols {
			sep := ","
			if i == 0 {
				sep = "{"
			}
			tw.keys = append(tw.keys, append(appendJSONString([]byte(sep), c.Name), ':'))
		}
	}
	return tw, nil
}

// Rows is how many rows were written.
func (w *Writer) Rows() int64 { return w.rows }

// Row writes one row; vals are parallel to the columns.
func (w *Writer) Row(vals []Value) error {
	b := w.buf[:0]
	switch w.format {
	case CSV:
		for i, c := range w.cols {
			if i > 0 {
				b = append(b, ',')
			}
			b = w.appendCSVValue(b, c.Kind, vals[i])
		}
		b = append(b, '\r', '\n')
	case NDJSON:
		for i, c := range w.cols {
			b = append(b, w.keys[i]...)
			b = appendJSONValue(b, c.Kind, vals[i])
		}
		if len(w.cols) == 0 {
			b = append(b, '{')
		}
		b = append(b, '}', '\n')
	}
	w.buf = b
	w.rows++
	_, err := w.w.Write(b)
	return err
}

// Flush writes what is buffered.
func (w *Writer) Flush() error { return w.w.Flush() }

func (w *Writer) appendCSVValue(b []byte, k Kind, v Value) []byte {
	if v.Null {
		return b
	}
	switch k {
	case String:
		s := v.S
		if w.excel && formulaLike(s) {
			// OWASP's advice for CSV injection: a leading apostrophe makes Excel show the
			// text as text.
			return appendCSV(b, "'"+s)
		}
		return appendCSV(b, s)
	case JSON:
		return appendCSV(b, v.S)
	case Int:
		return strconv.AppendInt(b, v.I, 10)
	case Dollars:
		return appendDollars(b, v.I)
	case Float:
		if math.IsNaN(v.F) || math.IsInf(v.F, 0) {
			return b
		}
		return strconv.AppendFloat(b, v.F, 'g', -1, 64)
	case Bool:
		return strconv.AppendBool(b, v.B)
	case Time:
		return appendTime(b, v.T)
	}
	return b
}

func appendJSONValue(b []byte, k Kind, v Value) []byte {
	if v.Null {
		return append(b, "null"...)
	}
	switch k {
	case String:
		return appendJSONString(b, v.S)
	case JSON:
		return append(b, v.S...)
	case Int:
		return strconv.AppendInt(b, v.I, 10)
	case Dollars:
		b = append(b, '"')
		return append(appendDollars(b, v.I), '"')
	case Float:
		if math.IsNaN(v.F) || math.IsInf(v.F, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, v.F, 'g', -1, 64)
	case Bool:
		return strconv.AppendBool(b, v.B)
	case Time:
		b = append(b, '"')
		return append(appendTime(b, v.T), '"')
	}
	return append(b, "null"...)
}

const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// appendTime writes t as timeLayout does, digit by digit (time.AppendFormat parses its
// layout on every call, a large part of an export's time).
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, timeLayout)
	}
	h, mi, sec := t.Clock()
	b = appendDigits(b, y, 4)
	b = append(b, '-')
	b = appendDigits(b, int(mo), 2)
	b = append(b, '-')
	b = appendDigits(b, d, 2)
	b = append(b, 'T')
	b = appendDigits(b, h, 2)
	b = append(b, ':')
	b = appendDigits(b, mi, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits writes v (non-negative, fewer than 10 digits) in exactly width digits.
func appendDigits(b []byte, v, width int) []byte {
	var d [9]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:width]...)
}

// appendDollars writes micro-dollars as dollars with six decimals: exact, never a float.
func appendDollars(b []byte, micros int64) []byte {
	u := uint64(micros)
	if micros < 0 {
		b = append(b, '-')
		u = uint64(-(micros + 1)) + 1 // no overflow at math.MinInt64
	}
	b = strconv.AppendUint(b, u/1_000_000, 10)
	frac := u % 1_000_000
	b = append(b, '.')
	for d := uint64(100_000); d > 0; d /= 10 {
		b = append(b, byte('0'+frac/d%10))
	}
	return b
}

// formulaLike reports whether Excel would take a cell for a formula (or for a command,
// with a leading tab or carriage return).
func formulaLike(s string) bool {
	return s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0]))
}

// appendCSV writes one field, quoted as RFC 4180 (and encoding/csv) require: when it holds
// a comma, a quote, a line break, or starts with a space (which readers may trim).
func appendCSV(b []byte, s string) []byte {
	if !needsQuotes(s) {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

func needsQuotes(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == ' ' || s[0] == '\t' {
		return true
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ',', '"', '\r', '\n':
			return true
		}
	}
	return false
}

const hex = "0123456789abcdef"

// appendJSONString writes s as a JSON string: quotes, backslashes and control characters
// escaped, invalid UTF-8 replaced, U+2028 and U+2029 escaped (as encoding/json does).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
