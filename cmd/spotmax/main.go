// Command spotmax keeps EC2 Auto Scaling groups on spot instances. See 'spotmax --help'.
package main

import (
	"os"

	"github.com/spotmax/spotmax/pkg/cli"
)

func main() { os.Exit(cli.Main()) }
