package devstack

import "syscall"

// sysProcAttr puts the child in its own process group (so Stop can signal all of it and a
// terminal's Ctrl-C reaches us first) and has the kernel SIGTERM it if we die, even by
// SIGKILL.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
