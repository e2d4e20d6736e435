package oauth

// SetFastPath turns the client credentials fast path on or off, and
// FastPathServed counts the requests it answered: for tests comparing it
// with op's path.
func SetFastPath(s *Server, on bool) { s.noFastPath = !on }

func FastPathServed(s *Server) int64 { return s.fastServed.Load() }
