"""flp's Flower app: ServerApp + ClientApp training an MLP on scikit-learn's digits."""
