package lifespan

import (
	"fmt"
	"sort"
	"sync"
)

type keyID struct{ name string }

// Key names one typed value of lifespan state. Keys compare by identity, not
// by name: two keys made by separate NewKey calls never collide, so declare
// each key once, as a package-level variable.
type Key[T any] struct{ id *keyID }

// NewKey returns a new key; name is used in errors and [State.Names].
func NewKey[T any](name string) Key[T] {
	return Key[T]{id: &keyID{name: name}}
}

// Name returns the name the key was made with.
func (k Key[T]) Name() string {
	if k.id == nil {
		return ""
	}
	return k.id.name
}

// Values is what a [Key] can read from: a [*State]; a [Group], which
// reads each app's state in the Group's order; or, during startup, a
// [*Scope] (which sees what its own hook set, and what hooks whose start
// succeeded before set).
type Values interface {
	lookup(id *keyID) (any, bool)
	// each calls fn with every key set, a shadowed key included.
	each(fn func(id *keyID))
}

// StateContextKey is the context key under which a server puts the
// [Values] its requests read: serve gives every API request's context its
// apps' Group, once per listener (net/http's BaseContext), so a handler
// reads state at no cost per request:
//
//	v, _ := r.Context().Value(lifespan.StateContextKey).(lifespan.Values)
//	db := dbKey.MustGet(v)
//
// It is a constant, so no package can reassign it and strand the state
// every handler reads.
const StateContextKey contextKey = 0

// contextKey is StateContextKey's type, one no other package can name,
// so no other package's key equals it; an integer, so a context lookup
// compares one word.
type contextKey int

func (contextKey) String() string { return "lifespan context value lifespan-state" }

// Get returns the key's value in v, and whether it was set.
func (k Key[T]) Get(v Values) (T, bool) {
	var zero T
	if k.id == nil || v == nil {
		return zero, false
	}
	raw, ok := v.lookup(k.id)
	if !ok {
		return zero, false
	}
	// Only this key's Set and With store under its id, each a T: a nil
	// raw is a nil value of an interface T (an error, say), which was set.
	if raw == nil {
		return zero, true
	}
	t, ok := raw.(T)
	return t, ok
}

// MustGet returns the key's value in v and panics when it is not set: use it
// where a missing value is a wiring mistake.
func (k Key[T]) MustGet(v Values) T {
	t, ok := k.Get(v)
	if !ok {
		panic(fmt.Sprintf("lifespan: state %q is not set", k.Name()))
	}
	return t
}

// Set stores value under the key in the app's state. It may be called only
// from a hook's start function, through the Scope it was given: after the
// start returned it panics, since state is read-only once ready, and after
// the start passed its timeout the value is dropped. It panics on a zero
// Key: make keys with NewKey.
func (k Key[T]) Set(s *Scope, value T) {
	if k.id == nil {
		panic("lifespan: Set with a zero Key; make keys with NewKey")
	}
	s.set(k.id, value)
}

// With returns a new State that holds value under the key on top of parent
// (which may be nil: a nil *State or Group is empty). parent is not
// changed: this is how a request adds values of its own without any other
// request seeing them. It panics on a zero Key: make keys with NewKey.
func (k Key[T]) With(parent Values, value T) *State {
	if k.id == nil {
		panic("lifespan: With with a zero Key; make keys with NewKey")
	}
	return &State{parent: parent, values: map[*keyID]any{k.id: value}}
}

// State is an app's read-only state: the values hooks set at startup, and
// any values layered on top of it with [Key.With]. A nil *State is empty.
// It is safe for concurrent use.
type State struct {
	parent Values
	values map[*keyID]any
}

func (s *State) lookup(id *keyID) (any, bool) {
	if s == nil {
		return nil, false
	}
	if v, ok := s.values[id]; ok {
		return v, true
	}
	if s.parent == nil {
		return nil, false
	}
	return s.parent.lookup(id)
}

func (s *State) each(fn func(id *keyID)) {
	if s == nil {
		return
	}
	for id := range s.values {
		fn(id)
	}
	if s.parent != nil {
		s.parent.each(fn)
	}
}

// Names returns the sorted names of every key set in s.
func (s *State) Names() []string {
	seen := map[*keyID]bool{}
	var names []string
	s.each(func(id *keyID) {
		if !seen[id] {
			seen[id] = true
			names = append(names, id.name)
		}
	})
	sort.Strings(names)
	return names
}

// stateBuilder collects values during startup; hooks may run in parallel.
type stateBuilder struct {
	mu     sync.Mutex
	values map[*keyID]any
}

func (b *stateBuilder) set(id *keyID, v any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.values == nil {
		b.values = map[*keyID]any{}
	}
	b.values[id] = v
}

func (b *stateBuilder) lookup(id *keyID) (any, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.values[id]
	return v, ok
}

func (b *stateBuilder) each(fn func(id *keyID)) {
	b.mu.Lock()
	ids := make([]*keyID, 0, len(b.values))
	for id := range b.values {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	for _, id := range ids {
		fn(id)
	}
}

func (b *stateBuilder) freeze() *State {
	b.mu.Lock()
	defer b.mu.Unlock()
	values := make(map[*keyID]any, len(b.values))
	for k, v := range b.values {
		values[k] = v
	}
	return &State{values: values}
}
