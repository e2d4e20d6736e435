package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/gatehouse-iot/gatehouse/internal/registry"
)

func (a *API) transferRoutes() {
	a.handle("GET /api/v1/registry/export", read, a.exportRegistry)
	a.handle("POST /api/v1/registry/import", write, a.importRegistry)
}

func transferFormat(r *http.Request) (string, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "", "json":
		return "json", nil
	case "csv":
		return "csv", nil
	default:
		return "", errorf(http.StatusBadRequest, "format %q: want json or csv", f)
	}
}

func (a *API) exportRegistry(w http.ResponseWriter, r *http.Request) error {
	format, err := transferFormat(r)
	if err != nil {
		return err
	}
	d, err := a.reg.Export(r.Context())
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if format == "csv" {
		if err := d.WriteCSV(&b); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b.Bytes())
	return err
}

func (a *API) importRegistry(w http.ResponseWriter, r *http.Request) error {
	format, err := transferFormat(r)
	if err != nil {
		return err
	}
	dry := false
	if s := r.URL.Query().Get("dryRun"); s != "" {
		if dry, err = strconv.ParseBool(s); err != nil {
			return errorf(http.StatusBadRequest, "dryRun %q: want true or false", s)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.maxImport))
	if err != nil {
		return err
	}
	var d *registry.Dump
	if format == "csv" {
		d, err = registry.ParseCSV(bytes.NewReader(body))
	} else {
		d, err = registry.ParseJSON(bytes.NewReader(body))
	}
	if err != nil {
		return err
	}
	rep, err := a.reg.Import(r.Context(), d, dry)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}
