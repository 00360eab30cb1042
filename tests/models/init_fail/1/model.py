class TritonPythonModel:

    def initialize(self, args):
        raise RuntimeError("init_fail refuses to initialize")

    def execute(self, requests):
        return []
