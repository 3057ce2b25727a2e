namespace kvx {}
