//go:build !unix

package conf

import "os"

// inode is 0 where the system has none to offer.
func inode(os.FileInfo) uint64 { return 0 }
