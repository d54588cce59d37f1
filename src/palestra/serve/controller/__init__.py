"""The controller: which workers are alive, what they serve, and which one takes the next
request. It never touches model traffic itself."""
