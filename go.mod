module github.com/aramaki/aramaki

go 1.26.8
