package metrics

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/pkg/probes"
	"github.com/berth-dev/berth/pkg/serve"
	"github.com/prometheus/client_golang/prometheus"
)

// collecting is a Registerer that keeps what is registered with it.
type collecting struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (c *collecting) Register(x prometheus.Collector) error {
	c.collectors = append(c.collectors, x)
	return c.Registerer.Register(x)
}

func (c *collecting) MustRegister(xs ...prometheus.Collector) {
	for _, x := range xs {
		if err := c.Register(x); err != nil {
			panic(err)
		}
	}
}

var (
	docLine  = regexp.MustCompile(`(?m)^//\t(berth_\w+)(?:\{([^}]*)\})?\s`)
	descName = regexp.MustCompile(`fqName: "(\w+)"`)
	descVars = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	// labelValues are the values a doc line may show for a label
	// (phase="start"|"stop").
	labelValues = regexp.MustCompile(`=("[^"]*"\|?)+`)
)

// The package doc lists every metric the package can register, with its
// labels, and nothing else: it once left out three of them and named a
// function that does not exist.
func TestDocListsEveryMetric(t *testing.T) {
	reg := &collecting{Registerer: prometheus.NewRegistry()}
	if _, err := NewLifespan(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewHTTP(reg); err != nil {
		t.Fatal(err)
	}
	if err := RegisterChecks(reg, probes.New()); err != nil {
		t.Fatal(err)
	}
	srv, err := serve.New(serve.Config{API: http.NotFoundHandler(), APIAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", ShutdownOn: []os.Signal{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := RegisterServer(reg, srv); err != nil {
		t.Fatal(err)
	}
	var registered []string
	for _, c := range reg.collectors {
		descs := make(chan *prometheus.Desc, 64)
		c.Describe(descs)
		close(descs)
		for d := range descs {
			s := d.String()
			name, vars := descName.FindStringSubmatch(s), descVars.FindStringSubmatch(s)
			if name == nil {
				t.Fatalf("cannot read the name of %s", s)
			}
			labels := ""
			if vars != nil {
				labels = vars[1]
			}
			registered = append(registered, name[1]+"{"+labels+"}")
		}
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range docLine.FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1]+"{"+labelValues.ReplaceAllString(m[2], "")+"}")
	}
	slices.Sort(registered)
	slices.Sort(documented)
	if !slices.Equal(registered, documented) {
		t.Errorf("doc.go lists\n  %s\nthe package registers\n  %s", strings.Join(documented, "\n  "), strings.Join(registered, "\n  "))
	}
	exported := exportedNames(t)
	for _, m := range regexp.MustCompile(`\[(\w+)\]`).FindAllStringSubmatch(string(doc), -1) {
		if !exported[m[1]] {
			t.Errorf("doc.go links [%s], which the package does not export", m[1])
		}
	}
}

// exportedNames returns the package's exported top-level names, read from
// its source.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.IsExported() {
					names[d.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch spec := spec.(type) {
					case *ast.TypeSpec:
						names[spec.Name.Name] = spec.Name.IsExported()
					case *ast.ValueSpec:
						for _, n := range spec.Names {
							names[n.Name] = n.IsExported()
						}
					}
				}
			}
		}
	}
	return names
}
