package oauth

import "crypto/sha256"

// SetFastPath turns the client credentials fast path on or off, and
// FastPathServed counts the requests it answered: for tests comparing it
// with op's path.
func SetFastPath(s *Server, on bool) { s.noFastPath = !on }

func FastPathServed(s *Server) int64 { return s.fastServed.Load() }

// VerifiedCached reports whether raw is in the verified-token cache.
func VerifiedCached(s *Server, raw string) bool {
	_, ok := s.verified.get(sha256.Sum256([]byte(raw)))
	return ok
}
