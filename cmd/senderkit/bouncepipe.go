package main

func (c *cli) bouncepipe(args []string) int {
	// 75 keeps the message in Postfix's queue: nothing is lost while the
	// bounce pipe is missing.
	return c.notYet("bouncepipe", "issue #5 (the bounce pipe); exiting 75 so Postfix keeps the message", exitTempFail)
}
