module github.com/cdaemon/cdaemon/bench

go 1.26.0

require (
	github.com/VividCortex/godaemon v1.0.0
	github.com/cdaemon/cdaemon v0.0.0
	github.com/sevlyar/go-daemon v0.1.6
)

require (
	github.com/kardianos/osext v0.0.0-20190222173326-2bc1f35cddc0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/cdaemon/cdaemon => ../
