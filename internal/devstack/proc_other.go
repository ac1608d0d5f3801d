//go:build unix && !linux

package devstack

import "syscall"

// sysProcAttr puts the child in its own process group so Stop can signal all of it.
// (Without Linux's Pdeathsig, the child outlives us if we are killed with SIGKILL.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
