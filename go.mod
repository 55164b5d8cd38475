module github.com/cdaemon/cdaemon

go 1.26
