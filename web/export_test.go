package web

// JSPattern is jsPattern, for the tests of the package's users' view.
var JSPattern = jsPattern
