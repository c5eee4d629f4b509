package main

func (c *cli) dkim(args []string) int {
	return c.notYet("dkim", "issue #4 (DKIM signing)", exitFailure)
}
