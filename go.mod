module github.com/nodescraper/nodescraper

go 1.26.8
