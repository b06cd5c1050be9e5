"""The API's routers, one module per group of endpoints."""

# every GET route answers HEAD too (HTTP requires it; load balancers and uptime checkers use it)
GET_AND_HEAD = ["GET", "HEAD"]
