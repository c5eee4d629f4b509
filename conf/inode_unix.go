//go:build unix

package conf

import (
	"os"
	"syscall"
)

// inode is fi's inode number: a file saved by rename is a new inode even
// when its size and modification time (coarse, on Linux a clock tick)
// match the old one's.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
