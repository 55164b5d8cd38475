module github.com/cdaemon/cdaemon

go 1.26.0

require golang.org/x/sys v0.49.0

require github.com/mattn/go-isatty v0.0.24
