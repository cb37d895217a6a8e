// Command pause is the pod sandbox ("infra") container of the test node's
// pods (internal/controlplane Node): it holds the pod's namespaces, reaps the
// zombies of a shared PID namespace, and exits on SIGINT or SIGTERM, as
// Kubernetes' own pause does. There is no registry here to pull that one
// from, so the node builds this one into a local image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
