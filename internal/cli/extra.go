package cli

// extraCommands are the commands that act as a device or OAuth client
// rather than as an administrator.
func extraCommands() map[string]command {
	return oauthCommands()
}
