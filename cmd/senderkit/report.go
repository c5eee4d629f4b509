package main

func (c *cli) report(args []string) int {
	return c.notYet("report", "issue #7 (sender reports)", exitFailure)
}
