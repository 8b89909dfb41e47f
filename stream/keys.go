package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// checkKeys returns an error if some object in the JSON document data has two
// keys that are equal, or equal once case-folded the way encoding/json
// matches keys to struct fields. data must already be known to be valid JSON.
func checkKeys(data []byte) error {
	// frame is one open object or array.
	type frame struct {
		path    string            // where the container is, for errors
		object  bool              // an object, not an array
		wantKey bool              // an object expecting a key next
		key     string            // the object's latest key
		keys    map[string]string // folded key -> key as written
	}
	var stack []*frame
	// valueDone notes that a value of the innermost container is complete.
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	// childPath is the path of a value that starts now.
	childPath := func() string {
		n := len(stack)
		switch {
		case n == 0:
			return "top level"
		case stack[n-1].object && n == 1:
			return fmt.Sprintf("%q", stack[n-1].key)
		case stack[n-1].object:
			return fmt.Sprintf("%s.%q", stack[n-1].path, stack[n-1].key)
		default:
			return stack[n-1].path + "[]"
		}
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading JSON: %w", err)
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, &frame{
					path: childPath(), object: true, wantKey: true, keys: make(map[string]string),
				})
			case '[':
				stack = append(stack, &frame{path: childPath()})
			default: // '}' or ']'
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].wantKey {
				f := stack[n-1]
				folded := foldKey(t)
				if prev, dup := f.keys[folded]; dup {
					if prev == t {
						return fmt.Errorf("object at %s has key %q twice", f.path, t)
					}
					return fmt.Errorf("object at %s has keys %q and %q, which differ only in case", f.path, prev, t)
				}
				f.keys[folded] = t
				f.key = t
				f.wantKey = false
				continue
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

// foldKey case-folds a JSON object key as encoding/json does when matching
// keys to struct fields: each rune r becomes unicode.ToUpper(unicode.ToLower(r)).
func foldKey(k string) string {
	return strings.ToUpper(strings.ToLower(k))
}
