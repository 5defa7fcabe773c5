package iam

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Markdown renders both roles' statements as the reference section of docs/iam.md: one table
// per role with each statement's actions, resources, conditions and reason.
func Markdown() string {
	var b strings.Builder
	for _, role := range Roles() {
		p, err := For(role, Options{})
		if err != nil {
			panic(err) // the default options are valid; a test renders this
		}
		fmt.Fprintf(&b, "### The %s role\n\n", role)
		b.WriteString("| statement | actions | resources | condition | why |\n|---|---|---|---|---|\n")
		for _, s := range p.Statement {
			var conds []string
			for _, op := range slices.Sorted(maps.Keys(s.Condition)) {
				for _, k := range slices.Sorted(maps.Keys(s.Condition[op])) {
					conds = append(conds, fmt.Sprintf("`%s` %s `%v`", k, op, s.Condition[op][k]))
				}
			}
			cond := strings.Join(conds, "<br>")
			if cond == "" {
				cond = "—"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", s.Sid, code(s.Action), code(s.Resource), cond,
				strings.ReplaceAll(s.Why, "|", "\\|"))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func code(items []string) string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = "`" + s + "`"
	}
	return strings.Join(out, "<br>")
}
