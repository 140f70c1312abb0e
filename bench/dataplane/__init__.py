"""The data-plane benchmark (issue #13): the router against bare loops and Quix Streams."""
