package web

import (
	"fmt"
	"regexp/syntax"
	"strings"
	"unicode"
)

// jsPattern rewrites a parameter's pattern (Go's RE2 syntax) for the
// pattern attribute of an input, which browsers compile as a JavaScript
// regular expression with the v flag: stricter about what must be escaped,
// in character classes above all. It writes the parsed expression out again
// rather than copying the text, so what the browser checks is what the
// server checks; ok is false for what has no faithful translation, and
// then the page shows the pattern as a hint only. The server checks every
// value either way.
func jsPattern(pattern string) (js string, ok bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", false
	}
	var b strings.Builder
	if !writeJS(&b, re) {
		return "", false
	}
	return b.String(), true
}

func writeJS(b *strings.Builder, re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEmptyMatch:
		b.WriteString("(?:)")
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 && unicode.SimpleFold(r) != r {
				b.WriteByte('[')
				for f := r; ; {
					b.WriteString(jsClassRune(f))
					if f = unicode.SimpleFold(f); f == r {
						break
					}
				}
				b.WriteByte(']')
				continue
			}
			b.WriteString(jsRune(r))
		}
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return false // matches nothing
		}
		b.WriteByte('[')
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			b.WriteString(jsClassRune(lo))
			if hi != lo {
				b.WriteByte('-')
				b.WriteString(jsClassRune(hi))
			}
		}
		b.WriteByte(']')
	case syntax.OpAnyCharNotNL:
		b.WriteString(`[^\n]`)
	case syntax.OpAnyChar:
		b.WriteString(`[\s\S]`)
	case syntax.OpBeginLine, syntax.OpBeginText:
		b.WriteByte('^') // one line: the same
	case syntax.OpEndLine, syntax.OpEndText:
		b.WriteByte('$')
	case syntax.OpWordBoundary:
		b.WriteString(`\b`)
	case syntax.OpNoWordBoundary:
		b.WriteString(`\B`)
	case syntax.OpCapture:
		b.WriteString("(?:")
		if !writeJS(b, re.Sub[0]) {
			return false
		}
		b.WriteByte(')')
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		if !writeAtom(b, re.Sub[0]) {
			return false
		}
		switch re.Op {
		case syntax.OpStar:
			b.WriteByte('*')
		case syntax.OpPlus:
			b.WriteByte('+')
		case syntax.OpQuest:
			b.WriteByte('?')
		default:
			switch {
			case re.Max == -1:
				fmt.Fprintf(b, "{%d,}", re.Min)
			case re.Max == re.Min:
				fmt.Fprintf(b, "{%d}", re.Min)
			default:
				fmt.Fprintf(b, "{%d,%d}", re.Min, re.Max)
			}
		}
		if re.Flags&syntax.NonGreedy != 0 {
			b.WriteByte('?')
		}
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if sub.Op == syntax.OpAlternate {
				if !writeGroup(b, sub) {
					return false
				}
			} else if !writeJS(b, sub) {
				return false
			}
		}
	case syntax.OpAlternate:
		for i, sub := range re.Sub {
			if i > 0 {
				b.WriteByte('|')
			}
			if !writeJS(b, sub) {
				return false
			}
		}
	default: // OpNoMatch and whatever a later Go adds
		return false
	}
	return true
}

// writeAtom writes what a repetition applies to, grouped unless it is one
// character or class already.
func writeAtom(b *strings.Builder, re *syntax.Regexp) bool {
	switch {
	case re.Op == syntax.OpLiteral && len(re.Rune) == 1, re.Op == syntax.OpCharClass,
		re.Op == syntax.OpAnyChar, re.Op == syntax.OpAnyCharNotNL, re.Op == syntax.OpCapture:
		return writeJS(b, re)
	}
	return writeGroup(b, re)
}

func writeGroup(b *strings.Builder, re *syntax.Regexp) bool {
	b.WriteString("(?:")
	if !writeJS(b, re) {
		return false
	}
	b.WriteByte(')')
	return true
}

// jsRune writes a character outside a class: the syntax characters and /
// escaped (the only identity escapes the v flag allows there), anything
// unprintable as a code point.
func jsRune(r rune) string {
	switch {
	case strings.ContainsRune(`^$\.*+?()[]{}|/`, r):
		return `\` + string(r)
	case r < 0x20 || r == 0x7f || !unicode.IsPrint(r):
		return fmt.Sprintf(`\u{%X}`, r)
	}
	return string(r)
}

// jsClassRune writes a character inside a class, where the v flag also
// reserves - and the doubled punctuators (&&, !!, ##, …): every ASCII
// punctuation character it allows to escape is escaped.
func jsClassRune(r rune) string {
	switch {
	case strings.ContainsRune("^$\\.*+?()[]{}|/&-!#%,:;<=>@`~", r):
		return `\` + string(r)
	case r < 0x20 || r == 0x7f || !unicode.IsPrint(r):
		return fmt.Sprintf(`\u{%X}`, r)
	}
	return string(r)
}
