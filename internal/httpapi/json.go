package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gatehouse-iot/gatehouse/internal/jsonbody"
)

// decode reads exactly one JSON object from r's body into v (package
// jsonbody's rules) and turns a refusal into the API's status: 415 for the
// media type, 413 over limit bytes, 400 otherwise.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	err := jsonbody.Read(r.Header.Get("Content-Type"), r.Body, limit, v, jsonbody.Options{})
	je, ok := errors.AsType[*jsonbody.Error](err)
	switch {
	case !ok:
		return err
	case je.Reason == jsonbody.MediaType:
		return errorf(http.StatusUnsupportedMediaType, "%s", je.Message)
	case je.Reason == jsonbody.TooLarge:
		return errorf(http.StatusRequestEntityTooLarge, "%s", je.Message)
	}
	return errorf(http.StatusBadRequest, "%s", je.Message)
}

// writeJSON sends v with status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// writeVersioned sends v with an ETag for its version.
func writeVersioned(w http.ResponseWriter, status int, version int64, v any) error {
	w.Header().Set("ETag", etag(version))
	return writeJSON(w, status, v)
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// ifMatch returns the version named by If-Match, or 0 when the header is
// absent or "*" (any version).
func ifMatch(r *http.Request) (int64, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" || h == "*" {
		return 0, nil
	}
	h = strings.TrimPrefix(h, "W/")
	v, err := strconv.ParseInt(strings.Trim(h, `"`), 10, 64)
	if err != nil || v <= 0 {
		return 0, errorf(http.StatusBadRequest, "If-Match %q is not an ETag this server issued", h)
	}
	return v, nil
}

// listResponse is the envelope of every list.
type listResponse[T any] struct {
	Items []T `json:"items"`
	// Next, when present, is passed as ?after= to get the following page.
	Next string `json:"next,omitempty"`
}

// page reads ?after= and ?limit=.
func page(r *http.Request) (after string, limit int, err error) {
	q := r.URL.Query()
	limit = 100
	if s := q.Get("limit"); s != "" {
		limit, err = strconv.Atoi(s)
		if err != nil || limit < 1 || limit > 1000 {
			return "", 0, errorf(http.StatusBadRequest, "limit %q: want 1 to 1000", s)
		}
	}
	return q.Get("after"), limit, nil
}

func list[T any](w http.ResponseWriter, items []T, limit int, key func(T) string) error {
	resp := listResponse[T]{Items: items}
	if len(items) == limit && limit > 0 {
		resp.Next = key(items[len(items)-1])
	}
	return writeJSON(w, http.StatusOK, resp)
}

// listPage writes the page ?after= and ?limit= ask for of items, a list
// the store does not page: ordered by key, those at or before after left
// out, at most limit of them, and next naming the last one sent when more
// follow. It gives every list the bounds of page.
func listPage[T any](w http.ResponseWriter, r *http.Request, items []T, key func(T) string) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	slices.SortStableFunc(items, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	if after != "" {
		i, _ := slices.BinarySearchFunc(items, after, func(it T, after string) int {
			if key(it) <= after {
				return -1
			}
			return 1
		})
		items = items[i:]
	}
	resp := listResponse[T]{Items: items}
	if len(items) > limit {
		resp.Items = items[:limit]
		resp.Next = key(items[limit-1])
	}
	return writeJSON(w, http.StatusOK, resp)
}

// DecodeJSON is decode for handlers outside this package: one JSON object,
// unknown fields rejected, at most limit bytes.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	return decode(w, r, limit, v)
}

// WriteJSON sends v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) error { return writeJSON(w, status, v) }
