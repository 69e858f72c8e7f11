package chart

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	yaml3 "go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the chart README's values table from values.yaml")

const (
	chartREADME = chartDir + "/README.md"
	tableBegin  = "<!-- values table: generated from values.yaml by `make chart-docs`; do not edit -->"
	tableEnd    = "<!-- end of values table -->"
)

// valueRow is one documented key of values.yaml.
type valueRow struct {
	key, def, doc string
}

// documentedValues walks values.yaml and returns a row per documented key,
// in file order, following helm-docs' convention: a "# -- " comment above a
// key describes it, continued by the comment lines that follow. A mapping
// whose children carry no description of their own is one row; otherwise
// each child is. Every leaf must be described, directly or by such a
// mapping: undocumented lists the keys that are not.
func documentedValues(t *testing.T) (rows []valueRow, undocumented []string) {
	t.Helper()
	raw, err := os.ReadFile(chartDir + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml3.Node
	if err := yaml3.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, m *yaml3.Node)
	walk = func(prefix string, m *yaml3.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			text := description(k.HeadComment)
			if v.Kind == yaml3.MappingNode && len(v.Content) > 0 && (text == "" || childrenDescribed(v)) {
				if text != "" {
					t.Errorf("values.yaml: %s has a description and so do its children; describe one or the other", key)
				}
				walk(key+".", v)
				continue
			}
			if text == "" {
				undocumented = append(undocumented, key)
			}
			rows = append(rows, valueRow{key: key, def: flow(t, v), doc: text})
		}
	}
	walk("", doc.Content[0])
	return rows, undocumented
}

// description returns the helm-docs description in a head comment.
func description(comment string) string {
	lines := strings.Split(comment, "\n")
	for i, l := range lines {
		if after, ok := strings.CutPrefix(strings.TrimSpace(l), "# -- "); ok {
			parts := []string{after}
			for _, more := range lines[i+1:] {
				more = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(more), "#"))
				if more == "" {
					break
				}
				parts = append(parts, more)
			}
			return strings.Join(parts, " ")
		}
	}
	return ""
}

func childrenDescribed(m *yaml3.Node) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if description(m.Content[i].HeadComment) != "" {
			return true
		}
		if v := m.Content[i+1]; v.Kind == yaml3.MappingNode && childrenDescribed(v) {
			return true
		}
	}
	return false
}

// flow renders a default compactly, as JSON.
func flow(t *testing.T, v *yaml3.Node) string {
	var x any
	if err := v.Decode(&x); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func valuesTable(rows []valueRow) string {
	var b bytes.Buffer
	b.WriteString("| key | default | description |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", r.key, strings.ReplaceAll(r.def, "|", `\|`), strings.ReplaceAll(r.doc, "|", `\|`))
	}
	return b.String()
}

// TestValuesAreDocumented fails when a key of values.yaml has no
// description, and when the chart README's values table is not the one
// values.yaml generates (go test ./chart -run TestValuesAreDocumented
// -update, or make chart-docs, rewrites it).
func TestValuesAreDocumented(t *testing.T) {
	rows, undocumented := documentedValues(t)
	for _, key := range undocumented {
		t.Errorf("values.yaml: %s has no \"# -- \" description", key)
	}
	readme, err := os.ReadFile(chartREADME)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(readme), tableBegin+"\n")
	_, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s lacks the markers %q and %q around the values table", chartREADME, tableBegin, tableEnd)
	}
	want := before + tableBegin + "\n" + valuesTable(rows) + tableEnd + after
	if want == string(readme) {
		return
	}
	if *update {
		if err := os.WriteFile(chartREADME, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the values table in %s is stale: run make chart-docs", chartREADME)
}
