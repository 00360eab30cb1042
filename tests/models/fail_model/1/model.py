class TritonPythonModel:

    def execute(self, requests):
        raise ValueError("fail_model always fails")
