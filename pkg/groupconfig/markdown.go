package groupconfig

import (
	"strings"
)

// Markdown renders the tag reference as a Markdown table (tag, type,
// default, propagated, flag, meaning) in Defs order, for docs/tags.md.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| tag | type | default | propagated | flag | meaning |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, d := range defs {
		key := "`" + d.Key + "`"
		switch {
		case d.Key == TagAlt:
			key = "`" + AltKey(1) + "` … `" + TagAlt + "N`"
		case d.Pattern != "":
			key = "`" + d.Pattern + "`"
		}
		for _, a := range d.Aliases {
			key += " (alias `" + a + "`)"
		}
		typ := d.Kind.String()
		if d.Kind == KindEnum {
			typ += ": " + strings.Join(d.Enum, ", ")
		}
		def := "—"
		if d.Default != "" {
			def = "`" + d.Default + "`"
		}
		prop := ""
		if d.Propagate {
			prop = "yes"
		}
		flag := "—"
		if d.Flag != "" {
			flag = "`--" + d.Flag + "`"
		}
		help := d.Help
		if d.Unsupported != "" {
			help += ". Not supported: " + d.Unsupported
		}
		cells := []string{key, typ, def, prop, flag, help}
		for i, c := range cells {
			cells[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	return b.String()
}
