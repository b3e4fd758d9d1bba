"""`/forge scale SERVICE ENV REPLICAS`: set a Deployment's replica count, durably and audited."""
